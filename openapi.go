// Package wsrelay holds what belongs to the whole project rather than to
// one package: the OpenAPI description of the HTTP API, embedded so that
// the binary serves exactly the document in the repository.
package wsrelay

import _ "embed"

// OpenAPI is openapi.yaml, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
