#!/bin/sh
# minio-init (docker-compose.yml), run once per `docker compose up` in the minio/mc image:
#  1. the bucket, with Object Lock when OBJECT_LOCK=true (only possible when the bucket is created);
#  2. default encryption SSE-S3 on the bucket (the workers also ask for it on every object);
#  3. a worker user limited to the bucket prefix (minio-worker-policy.json), whose key is made
#     here on the first run and kept in the aws-credentials volume as an AWS credentials file,
#     readable only by the workers' user. The key is never printed.
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

if [ "${OBJECT_LOCK:-false}" = "true" ]; then
  mc mb --ignore-existing --with-lock "local/$BUCKET"
else
  mc mb --ignore-existing "local/$BUCKET"
fi
mc encrypt set sse-s3 "local/$BUCKET"

umask 077
if [ ! -s /creds/worker-secret ]; then
  head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' > /creds/worker-secret
fi
secret=$(cat /creds/worker-secret)
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$WORKER_ACCESS_KEY" "$secret" \
  > /creds/credentials
chown "$WORKER_UID:$WORKER_UID" /creds/credentials
chmod 0400 /creds/credentials

mc admin user add local "$WORKER_ACCESS_KEY" "$secret" >/dev/null
mc admin policy create local reliefdocs-worker /init/minio-worker-policy.json
# attaching a policy that is already attached (a second run) is refused: then check it is there
mc admin policy attach local reliefdocs-worker --user "$WORKER_ACCESS_KEY" >/dev/null 2>&1 \
  || mc admin user info local "$WORKER_ACCESS_KEY" | grep -q reliefdocs-worker
echo "bucket $BUCKET ready (object lock: ${OBJECT_LOCK:-false}); worker user $WORKER_ACCESS_KEY"
