module github.com/gwtransport/gwtransport/cmd/gwproxy

go 1.23

replace github.com/gwtransport/gwtransport => ../..

replace (
	github.com/gwtransport/gwtransport/gwotel => ../../gwotel
	github.com/gwtransport/gwtransport/redisstore => ../../redisstore
)
