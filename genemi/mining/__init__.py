"""Hard-negative mining: caption rewriting and tag -> ground -> segment -> edit -> filter."""
