"""Plan primitives: the pure pieces of a scatter merge (values, sort, aggregate, having)."""
