//! spindel-node
