// The node config and the tracked-flow entry the datapath's API takes and returns are defined
// with the maps' layouts (TrellisDatapathLayout); users of the datapath see them through it.
@_exported import TrellisDatapathLayout
