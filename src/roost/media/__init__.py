"""Media runtime shared by the CHIRP and SIP drivers."""

from roost.media.ticker import MediaTicker, Subscription, TickerStats

__all__ = ["MediaTicker", "Subscription", "TickerStats"]
