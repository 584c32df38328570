"""The station's settings with the baseline's plain Django views beside the API (bench/api_throughput.py only)."""

from station.settings import *  # noqa: F403 - the same settings, one URLconf more

ROOT_URLCONF = "api_baseline_urls"
