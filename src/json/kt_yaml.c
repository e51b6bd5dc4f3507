/* kt_yaml: see the header. libyaml's event parser drives a stack of open
 * cJSON containers; a mapping's pending key waits in keys[] until its value
 * arrives. */
#include "json/kt_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

cJSON *kt_yaml_to_json(const char *text, size_t len, char *err,
                           size_t errlen)
{
  yaml_parser_t p;
  yaml_event_t ev;
  cJSON *stack[64], *root = NULL;
  char *keys[64] = {0};
  int depth = 0, done = 0;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  while (!done) {
    if (!yaml_parser_parse(&p, &ev)) {
      snprintf(err, errlen, "line %zu: %s", p.problem_mark.line + 1,
               p.problem ? p.problem : "YAML error");
      cJSON_Delete(root);
      root = NULL;
      break;
    }
    cJSON *node = NULL;
    if ((ev.type == YAML_MAPPING_START_EVENT ||
         ev.type == YAML_SEQUENCE_START_EVENT) && depth >= 63) {
      snprintf(err, errlen, "line %zu: nested too deeply",
               ev.start_mark.line + 1);
      yaml_event_delete(&ev);
      cJSON_Delete(root);
      root = NULL;
      break;
    }
    switch (ev.type) {
    case YAML_MAPPING_START_EVENT:
      node = cJSON_CreateObject();
      break;
    case YAML_SEQUENCE_START_EVENT:
      node = cJSON_CreateArray();
      break;
    case YAML_SCALAR_EVENT:
      if (depth && cJSON_IsObject(stack[depth - 1]) && !keys[depth - 1]) {
        keys[depth - 1] = strdup((const char *)ev.data.scalar.value);
        break;
      }
      node = cJSON_CreateString((const char *)ev.data.scalar.value);
      break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
      if (depth > 0)
        depth--;
      break;
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    if (node) {
      if (!depth) {
        cJSON_Delete(root);
        root = node;
      } else if (cJSON_IsArray(stack[depth - 1])) {
        cJSON_AddItemToArray(stack[depth - 1], node);
      } else {
        cJSON_AddItemToObject(stack[depth - 1], keys[depth - 1] ? keys[depth - 1] : "", node);
        free(keys[depth - 1]);
        keys[depth - 1] = NULL;
      }
      if (cJSON_IsObject(node) || cJSON_IsArray(node))
        stack[depth++] = node;
    }
    yaml_event_delete(&ev);
  }
  for (int i = 0; i < 64; i++)
    free(keys[i]);
  yaml_parser_delete(&p);
  return root;
}
