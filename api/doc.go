// Package api serves wsrelay's HTTP surface on top of the relay package:
// REST snapshots and history, multiplexed Server-Sent Events with exact
// resume, admin endpoints, health, Prometheus metrics and the OpenAPI
// document. routes.go shows the whole surface; errors.go maps every error
// to a status code and a stable error code.
package api
