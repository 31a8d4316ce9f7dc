"""nurture: email sequences for a course of microneedling for acne scars."""

__version__ = "0.1.0"
