"""The district library: one library in an S3-compatible bucket that a publishing
appliance writes and every school's appliance fetches from (docs/district.md).

``libraries`` owns the table of known libraries, ``keys`` signs and checks manifests,
``bucket`` talks S3 through boto3, ``sync`` publishes, fetches and counts a version's
state at this appliance."""
