/* libFuzzer harness for the kubeconfig loader (--kube-config,
 * --kube-config-paths): any bytes must load or fail with a reason, never
 * crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "k8s/kt_kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct kt_kube_config c;
  char err[512];
  if (kt_kube_parse_kubeconfig((const char *)data, size, "/nonexistent", NULL, &c, err,
                               sizeof err) == 0)
    kt_kube_config_free(&c);
  return 0;
}
