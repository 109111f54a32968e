"""Pipeline stages: the interface, the registry and the built-in annotate/decide stages."""
