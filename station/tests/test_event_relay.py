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


def test_questions_asked_while_a_read_runs_are_answered_together_each_with_its_own_answer():
    async def calls():
        hub, reads, finish = Hub(), [], asyncio.Event()

        async def read(questions):
            reads.append(list(questions))
            if len(reads) == 1:
                await finish.wait()
            return [question * 10 for question in questions]

        first = asyncio.ensure_future(hub.ask("key", 1, read))
        while not reads:
            await asyncio.sleep(0.005)
        meanwhile = [asyncio.ensure_future(hub.ask("key", question, read)) for question in (2, 3, 4)]
        await asyncio.sleep(0.01)
        finish.set()
        return await first, await asyncio.gather(*meanwhile), reads

    first, meanwhile, reads = asyncio.run(asyncio.wait_for(calls(), 5))
    assert (first, meanwhile) == (10, [20, 30, 40])
    assert reads == [[1], [2, 3, 4]]  # a lone question waits for none; those asked meanwhile share the next read
