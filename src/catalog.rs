//! The AWS service catalog: which services offer interface endpoints, their private DNS names and the
//! service id used in `vpce-…` names. Data lives in `zones/services.tsv`, embedded at build time.
//! (Helper-owned: being written. The API below is the contract the rest of the crate uses.)
