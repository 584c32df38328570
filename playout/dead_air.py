"""Dead air in the audio: each engine watches its own output (playout.liquidsoap) and moves on by itself.

The output below the channel's silence threshold for its dead-air limit, while an item, a webstream or the filler is
on air, is dead air: the engine closes a webstream's window or skips the rest, so that its fallback brings the filler
(or the filler's next file) on air within a frame, with no round trip to the agent. It prints the silence's length;
the agent logs it in the as-run log and alerts (playout.services.channel_dead_air). A paused channel, silence with
nothing to play, and media marked quiet on purpose (``MediaAsset.intentionally_quiet``) are not dead air. An engine
that stops answering altogether is the health job's to fail over.
"""

DEFAULT_DEAD_AIR_SECONDS = 5.0
DEAD_AIR_LIMITS = (1.0, 300.0)  # seconds: what a channel may ask for
DEFAULT_SILENCE_THRESHOLD = -50.0  # dBFS
SILENCE_THRESHOLDS = (-90.0, -20.0)
