/* kt_kinds: maps an ownerReference's (apiVersion, kind) to a resource
 * without access to the cluster's discovery. A built-in table covers the
 * standard kinds; every audit event teaches the mapping of the object it
 * carries (objectRef.resource + responseObject.kind), so custom resources
 * are learnt as soon as one of them is seen. Thread-safe. */
#ifndef KT_KINDS_H
#define KT_KINDS_H
#include <stddef.h>

/* group = the part of apiVersion before '/', "" for core. Writes the
 * resource into out; returns 0, or -ENOENT when the kind is unknown and
 * no plural could be guessed. */
int kt_kinds_resource(const char *api_version, const char *kind, char *out,
                      size_t outlen);
void kt_kinds_learn(const char *group, const char *kind, const char *resource);
/* Splits "apps/v1" into group "apps"; "v1" into "". */
void kt_kinds_group(const char *api_version, char *out, size_t outlen);

#endif
