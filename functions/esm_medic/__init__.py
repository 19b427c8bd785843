"""esm-medic: keep Lambda Kafka (Amazon MSK / self-managed) event source mappings healthy."""

__version__ = "0.1.0"
