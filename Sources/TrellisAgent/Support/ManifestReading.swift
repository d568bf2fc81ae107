// The manifest reader and the path-aware tree access (`ManifestFile`, `TreeReader`,
// `FieldError`, `YAMLTree`) live in TrellisManifests, shared with the lab; the agent's files
// (config, handshake, local API) use them as if they were its own.
@_exported import TrellisManifests
// FieldError, the error of every field-by-field reader (TrellisCore: the handshake uses it too).
@_exported import struct TrellisCore.FieldError
