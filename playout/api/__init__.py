"""Playout channels, shows, playlists and the as-run log over REST."""
