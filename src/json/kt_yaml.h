/* kt_yaml: YAML text to a cJSON tree (mappings to objects, sequences to
 * arrays, every scalar to a string: the readers decide what a scalar
 * means). Of several documents the last is kept. Used by the transform config and
 * kubeconfig loaders. */
#ifndef KT_YAML_H
#define KT_YAML_H
#include <stddef.h>

#include <cjson/cJSON.h>

/* NULL on a syntax error (reason with its line in err). Caller deletes. */
cJSON *kt_yaml_to_json(const char *text, size_t len, char *err, size_t errlen);

#endif
