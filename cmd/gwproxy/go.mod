module github.com/gwtransport/gwtransport/cmd/gwproxy

go 1.23.0

replace github.com/gwtransport/gwtransport => ../..

replace (
	github.com/gwtransport/gwtransport/gwotel => ../../gwotel
	github.com/gwtransport/gwtransport/redisstore => ../../redisstore
)

require (
	github.com/prometheus/client_golang v1.23.2 // indirect
	github.com/prometheus/common v0.66.1 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
