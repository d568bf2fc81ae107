// The manifest reader (`ManifestFile`, `YAMLTree`) lives in TrellisManifests, shared with the
// lab; the field reader (`TreeReader`, `FieldError`) in TrellisCore, shared with the plugin's
// handshake. The agent's files (config, handshake, local API) use them as if they were its own.
@_exported import TrellisManifests
@_exported import struct TrellisCore.FieldError
@_exported import struct TrellisCore.TreeReader
