"""The node agent's playout side: one module per role, put in order by ``ChannelSupervisor``.

- ``planning``: which channels run here, which items to fetch and to dispatch soon;
- ``launcher``: a channel's engine started (its directory, script, telnet port);
- ``fillers``: each engine's filler playlist, kept to the files on this node;
- ``dispatch``: the next item handed to the engine ahead of its slot, pause and skip;
- ``crashes``: restarts, giving up, and one channel's fault kept to that channel;
- ``as_run``: the engines' on-air reports settled into the as-run log.
"""

from playout.agent.supervisor import ChannelSupervisor

__all__ = ["ChannelSupervisor"]
