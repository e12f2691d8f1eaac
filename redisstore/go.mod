module github.com/gwtransport/gwtransport/redisstore

go 1.23

replace github.com/gwtransport/gwtransport => ..
