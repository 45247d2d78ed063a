#!/usr/bin/env bash
# `make demo-s3`: the demo end to end against a local S3 server (moto, pinned, in .venv-s3/),
# started here and stopped on any exit. The provider's side of the set-up is done the way
# README "Delivery to Amazon S3" describes, with boto3 against the local server as the bucket
# owner: a bucket, a delivery role whose trust policy admits the coordinator only with this
# collaboration's External ID and whose permission policy allows writes under
# <prefix>/<collaboration-id>/ only (the documents `cleanroom provider aws-setup` prints), and a
# coordinator IAM user allowed nothing but sts:AssumeRole. Then `cleanroom demo --destination-s3`
# runs every role; the coordinator delivers through the assumed role, the provider reads back
# with its own keys, and the summary says what each party saw.
#
# Output: demo-output-s3/ (work directory), .build/s3-server-demo/ (server state, credentials).
set -euo pipefail
cd "$(dirname "$0")/../.."
state="$PWD/.build/s3-server-demo"
trap 'CLEANROOM_S3_STATE="$state" bash Tests/scripts/s3-server.sh stop' EXIT

swift build -c release --static-swift-stdlib --product cleanroom >&2   # as `make release`
endpoint=$(CLEANROOM_S3_STATE="$state" bash Tests/scripts/s3-server.sh start moto)
echo "demo-s3: local S3 server (moto) at $endpoint" >&2

collaboration=$(python3 -c 'import uuid; print(uuid.uuid4())')
external=$(python3 -c 'import uuid; print(uuid.uuid4())')
bucket="acme-audiences"
prefix="cleanroom"

# The provider (bucket owner, keys of profile `admin`) sets up its side; prints the role ARN and
# writes the coordinator's own keys as profile `coordinator` next to the owner's as `provider`.
role_arn=$(.venv-s3/bin/python - "$endpoint" "$state/credentials" "$state/demo-credentials" "$bucket" "$prefix" "$collaboration" "$external" <<'PY'
import sys, json, configparser, boto3
endpoint, admin_file, out_file, bucket, prefix, collab, external = sys.argv[1:]
cfg = configparser.ConfigParser(); cfg.read(admin_file)
admin = dict(aws_access_key_id=cfg["admin"]["aws_access_key_id"], aws_secret_access_key=cfg["admin"]["aws_secret_access_key"])
kw = dict(endpoint_url=endpoint, region_name="us-east-1", **admin)
iam, s3 = boto3.client("iam", **kw), boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket)
# The coordinator's own identity: allowed only to assume roles.
user = iam.create_user(UserName="coordinator")["User"]
iam.put_user_policy(UserName="coordinator", PolicyName="assume-only", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
key = iam.create_access_key(UserName="coordinator")["AccessKey"]
# The delivery role: trust (External ID condition) and write-only permission, as aws-setup prints.
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": external}}}]}
role = iam.create_role(RoleName="cleanroom-delivery", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
iam.put_role_policy(RoleName="cleanroom-delivery", PolicyName="cleanroom-delivery", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Sid": "CleanRoomDeliveryWriteOnly", "Effect": "Allow",
     "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": "arn:aws:s3:::%s/%s/%s/*" % (bucket, prefix, collab)}]}))
with open(out_file, "w") as f:
    f.write("[provider]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (admin["aws_access_key_id"], admin["aws_secret_access_key"]))
    f.write("[coordinator]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (key["AccessKeyId"], key["SecretAccessKey"]))
print(role["Arn"])
PY
)
chmod 600 "$state/demo-credentials"
echo "demo-s3: bucket s3://$bucket/$prefix, role $role_arn (External ID $external), coordinator user allowed only sts:AssumeRole" >&2

AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_SHARED_CREDENTIALS_FILE="$state/demo-credentials" AWS_CONFIG_FILE=/nonexistent \
  .build/release/cleanroom demo --work-dir "${DEMO_S3_WORK_DIR:-demo-output-s3}" \
    --destination-s3 "s3://$bucket/$prefix" --region us-east-1 --role-arn "$role_arn" \
    --collaboration-id "$collaboration" --external-id "$external" \
    --coordinator-profile coordinator --provider-profile provider "$@"
