"""Math on models and features; returns arrays, draws nothing."""
