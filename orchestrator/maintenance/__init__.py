"""The 8020 maintenance of SwarmSH: health checks, telemetry archival, performance
reports and work-queue optimisation on a schedule, run by the supervisor (``schedule``)
or by cron (``cron``); the tasks themselves are in ``tasks``."""
