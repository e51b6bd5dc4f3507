/* kt_scanpods: `kelemetry scan` finding its instances through the
 * Kubernetes API (behaviour spec §4): the pods labelled
 * app.kubernetes.io/name=kelemetry (and app.kubernetes.io/instance=<release>
 * when given) in a namespace; pod conditions that are False are printed;
 * every container port named `metrics` becomes a URL to scrape. */
#ifndef KT_SCANPODS_H
#define KT_SCANPODS_H
#include <stdio.h>

/* The whole `kelemetry scan [URL...] [--kube-config F] [--kube-context C]
 * [--namespace NS] [--release NAME] [--in-cluster]` command; returns its
 * exit status (0 healthy, 1 attention needed, 2 unreachable or bad usage). */
int kt_scan_main(int argc, char **argv, FILE *out);

#endif
