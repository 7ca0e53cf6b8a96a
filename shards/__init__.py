"""The shard format shared by `babylm.prep` (writes it) and `babylm.train` (reads it)."""

from babylm.shards.atomic import atomic_write, atomic_write_bytes
from babylm.shards.errors import (
    CorruptSample,
    FileTooLarge,
    NotRegularFile,
    RemoteError,
    ShardError,
    ShardsError,
)
from babylm.shards.manifest import (
    FORMAT_VERSION,
    KINDS,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ShardEntry,
    load_manifest,
    parse_manifest,
    write_manifest,
)
from babylm.shards.reader import (
    Dataset,
    DatasetNotFound,
    ShardRef,
    open_dataset,
    open_file,
    read_npy,
    read_token_table,
    token_column,
)
from babylm.shards.rolling import RollingWriter
from babylm.shards.tar_samples import iter_tar_samples, parse_sample
from babylm.shards.verify import ShardProblem, verify_dataset
from babylm.shards.version import package_version
from babylm.shards.writer import (
    ArrowShardWriter,
    TarShardWriter,
    read_entry,
    token_dtype,
    write_tar_shard,
)

__version__ = package_version()

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "FORMAT_VERSION",
    "KINDS",
    "MANIFEST_NAME",
    "ArrowShardWriter",
    "CorruptSample",
    "Dataset",
    "DatasetNotFound",
    "Manifest",
    "ManifestError",
    "RollingWriter",
    "ShardEntry",
    "ShardError",
    "ShardProblem",
    "ShardRef",
    "ShardsError",
    "FileTooLarge",
    "NotRegularFile",
    "RemoteError",
    "TarShardWriter",
    "iter_tar_samples",
    "load_manifest",
    "open_dataset",
    "open_file",
    "parse_manifest",
    "parse_sample",
    "read_entry",
    "read_npy",
    "read_token_table",
    "token_column",
    "token_dtype",
    "verify_dataset",
    "write_manifest",
    "write_tar_shard",
]
