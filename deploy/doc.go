// Package deploy holds what an operator installs cmkd with: the Helm chart
// (helm/cmkd) and the manifests rendered from it (kubernetes), the Azure
// side as Bicep (azure), the NATS streams (nats), alert rules and a
// dashboard (monitoring), and the container image (Dockerfile). Its tests
// check them offline.
package deploy
