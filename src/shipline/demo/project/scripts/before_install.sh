#!/bin/sh
# Runs before the new instances start; $LIFECYCLE_EVENT and $DEPLOYMENT_ID are set.
echo "$LIFECYCLE_EVENT for deployment $DEPLOYMENT_ID"
