package pgtest

var SchemaName = schemaName
