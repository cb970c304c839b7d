"""Training: the one loop shared by every task, and the small pieces it is made of."""
