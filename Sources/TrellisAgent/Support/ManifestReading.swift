// The manifest reader and the path-aware tree access (`ManifestFile`, `TreeReader`,
// `FieldError`, `YAMLTree`) live in TrellisManifests, shared with the lab; the agent's files
// (config, handshake, local API) use them as if they were its own.
@_exported import TrellisManifests
