"""The control table's record and transaction types (SPEC §5): plain names of the
contract, below every layer, so that a layer under the steward (remotes checking a
backup's control table) reads them without importing the steward."""

BEGIN = "begin"
DATA_COMMITTED = "data_committed"
COMPLETED = "completed"
FAILED = "failed"
PC_PENDING = "post_commit_pending"
PC_STARTED = "post_commit_started"
PC_COMPLETED = "post_commit_completed"
PC_FAILED = "post_commit_failed"
TERMINAL = (COMPLETED, FAILED)
PC_TERMINAL = (PC_COMPLETED, PC_FAILED)

WRITE = "write"
POST_COMMIT = "post_commit"
