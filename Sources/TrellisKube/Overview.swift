// TrellisKube: the Kubernetes API as the node agent needs it. No agent logic lives here.
//
// Pieces, in the order a caller meets them:
//
// - Credentials -> `KubeClientConfig`: `.inCluster()` (service account under
//   /var/run/secrets/kubernetes.io/serviceaccount, root overridable for tests),
//   `.kubeconfig(path:context:)` (kubectl's file as kind writes it; relative paths are
//   relative to the file), `.automatic()`. Unusable settings throw `KubeConfigError`, which
//   names the file and the field. A token file is followed as it rotates.
// - `KubeClient(config:)`: get, list (one page), create, replace, patch (merge, strategic
//   merge, JSON patch; optionally a subresource such as `status`), delete, watch (an
//   AsyncThrowingStream of `WatchEvent`), shutdown. Failures are `KubeAPIError` (status,
//   reason, message, Retry-After; isGone/isTooManyRequests/isConflict/isNotFound),
//   `KubeTransportError`, `KubeDecodingError`, `KubeRequestError`.
// - Objects: `Node`, `Namespace`, `Pod`, `NetworkPolicy` (whole spec), `Status`, all
//   Codable as the API's JSON (unknown fields ignored, nils omitted), conforming to
//   `KubeResource` (conform other types to reach other kinds).
// - `Informer<Object>`: list (paged) + watch with bookmarks, resuming, relisting on 410,
//   backing off on failures, until its task is cancelled. It hands `InformerEvent`s to its
//   consumer; `InformerCache` turns them into added/updated/removed changes.
//
// An informer for this node's pods, reconciled by difference:
//
//     let client = try KubeClient(config: try .automatic(), logger: logger)
//     let pods = Informer<Pod>(client: client, options: InformerOptions(fieldSelector: "spec.nodeName=\(nodeName)"),
//                              logger: logger)
//     var cache = InformerCache<Pod>()
//     try await pods.run { event in                       // returns when the task is cancelled
//         for change in cache.apply(event) {
//             switch change {
//             case .added(let pod), .updated(_, let pod): upsert(pod)
//             case .removed(let pod): remove(pod)
//             }
//         }
//     }
//     try await client.shutdown()
//
// A Node condition, leaving the kubelet's conditions alone (strategic merge by `type`):
//
//     let condition = NodeCondition(type: "NetworkUnavailable", status: "False", reason: "TrellisIsUp",
//                                   message: "overlay programmed", lastTransitionTime: .now)
//     _ = try await client.patch(Node.self, name: nodeName,
//                                try .strategicMerge(Node(metadata: ObjectMeta(), status: NodeStatus(conditions: [condition]))),
//                                subresource: "status")
//
// Choices:
//
// - Lists are consistent reads (no resourceVersion), paged; the informer watches from the
//   list's version. It does not use resourceVersion=0 (served from the watch cache and not
//   paged by real servers).
// - A watch's timeoutSeconds is spread over [1x, 2x] of `watchTimeout`, as client-go does, so
//   that a fleet of agents does not reconnect in step; full jitter on backoff for the same reason.
// - HTTP connections: each open watch holds one (HTTP/1.1); `maxConnectionsPerServer` bounds
//   them. Connection establishment is not retried inside AsyncHTTPClient: the informer's own
//   backoff decides, and a caller gets its answer at once.
