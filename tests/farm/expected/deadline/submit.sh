#!/bin/sh
# Send both jobs to Deadline (the render job waits for the track job).
deadlinecommand -SubmitMultipleJobs -dependent -job $ROOT/jobs/sh010/track_job_info.job $ROOT/jobs/sh010/track_plugin_info.job -job $ROOT/jobs/sh010/render_job_info.job $ROOT/jobs/sh010/render_plugin_info.job
