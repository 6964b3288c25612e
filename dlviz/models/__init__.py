"""Small networks the demos train."""
