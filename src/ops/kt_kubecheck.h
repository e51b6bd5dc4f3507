/* kt_kubecheck: `kelemetry kube-check`: can this process reach the
 * cluster with the configuration it was given (kubeconfig or in-cluster),
 * what does the apiserver serve, may it hold leases? Prints a few lines and
 * returns the exit status: 0 reachable, 1 not (with a one-line reason). */
#ifndef KT_KUBECHECK_H
#define KT_KUBECHECK_H
#include <stdio.h>

/* kubeconfig NULL or "" = in-cluster. */
int kt_kubecheck(const char *kubeconfig, const char *context, FILE *out);

#endif
