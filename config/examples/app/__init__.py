"""The example project whose pyproject.toml schedules ``app.jobs:report``."""
