module github.com/cmkd-io/cmkd

go 1.26.0
