//! DNS wire format on the query path: parse a query without allocating, encode a compact response.
//! (Helper-owned: being written.)
