#!/bin/sh
# Send both jobs to Deadline (the render job waits for the track job).
# The jobs run with the FaceGraft plugin: install it once with
#   cp -r $ROOT/jobs/sh010/FaceGraft "$DEADLINE_REPOSITORY/custom/plugins/"
deadlinecommand -SubmitMultipleJobs -dependent -job $ROOT/jobs/sh010/track_job_info.job $ROOT/jobs/sh010/track_plugin_info.job -job $ROOT/jobs/sh010/render_job_info.job $ROOT/jobs/sh010/render_plugin_info.job
