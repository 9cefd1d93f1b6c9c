"""vpc-resolver for Python test suites: `Server` runs the DNS server that answers like the Route 53 VPC Resolver,
`Server.from_aws` serves what a boto3 session (real AWS or moto) reports, and the `vpc_resolver` pytest fixture
starts servers that stop when the test ends."""

from ._aws import AwsImportWarning, MotoDeviationWarning
from ._aws import from_aws as _from_aws
from ._server import Server, ServerError, binary

Server.from_aws = classmethod(_from_aws)  # type: ignore[attr-defined]

__all__ = ["Server", "ServerError", "AwsImportWarning", "MotoDeviationWarning", "binary"]
