"""The per-process hub's shared reads (the dashboards' snapshots and catch-ups)."""

import asyncio

from station.event_relay import READ_SPACING, Hub


def test_a_shared_read_begins_after_every_call_it_answers_one_at_a_time_and_spaced():
    async def calls():
        hub, begun, began_at, finish = Hub(), [], [], [asyncio.Event() for _ in range(3)]

        async def read():
            number = len(begun) + 1
            begun.append(number)
            began_at.append(asyncio.get_running_loop().time())
            await finish[number - 1].wait()
            return number

        async def until_begun(count):
            while len(begun) < count:
                await asyncio.sleep(0.005)

        first = asyncio.ensure_future(hub.read("key", read))
        await until_begun(1)
        during_first = [asyncio.ensure_future(hub.read("key", read)) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert begun == [1]  # the second read waits for the first
        finish[0].set()
        await until_begun(2)
        during_second = asyncio.ensure_future(hub.read("key", read))
        other_key = await asyncio.wait_for(hub.read("other", lambda: asyncio.sleep(0, "other")), 1)
        finish[1].set()
        await until_begun(3)
        finish[2].set()
        results = await first, await asyncio.gather(*during_first), await during_second
        await asyncio.sleep(READ_SPACING)
        return results, other_key, [later - earlier for earlier, later in zip(began_at, began_at[1:])], hub

    (first, during_first, during_second), other_key, spacings, hub = asyncio.run(asyncio.wait_for(calls(), 5))
    assert (first, during_first, during_second) == (1, [2, 2], 3)
    assert other_key == "other"  # another key's read runs beside them, at once
    assert min(spacings) >= READ_SPACING
    assert hub.next_reads == {} and hub.read_lanes == {}  # nothing kept once every read is done
