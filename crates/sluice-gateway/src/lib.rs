//! sluice-gateway
