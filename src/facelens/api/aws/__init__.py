"""The AWS-compatible endpoints: Rekognition and DynamoDB on ``POST /``, IoT data's publish.

AWS SDKs and the AWS CLI call these unchanged. What they share: the AWS JSON
protocol (:mod:`~facelens.api.aws.protocol`), Signature Version 4
(:mod:`~facelens.api.aws.sigv4`) and the refusal of replayed signatures
(:mod:`~facelens.api.aws.replays`). Their answers keep AWS's shapes; they are
not part of the documented REST API.
"""
