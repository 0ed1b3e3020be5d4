"""storyboard: multi-shot storyboards for Kling AI video, validated, planned, priced, rendered and cut."""

__version__ = "0.1.0"
