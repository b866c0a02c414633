module protocolfloor

go 1.24
