"""Join state: the tokens a join has received per run, kept in memory per partition (``store``), delivered by the
stage runner for joins that wait for another envelope (``delivery``), and rebuilt from the compacted changelog
topic when a worker takes a partition over (``changelog``)."""

from streams.joins.changelog import restore_joins
from streams.joins.delivery import JoinDelivery, take_join
from streams.joins.store import JoinEntry, JoinStateTooLarge, JoinStore, join_key

__all__ = ["JoinDelivery", "JoinEntry", "JoinStateTooLarge", "JoinStore", "join_key", "restore_joins", "take_join"]
