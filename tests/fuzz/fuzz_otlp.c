/* libFuzzer harness for what an OTLP collector answers: the body of an
 * ExportTraceServiceResponse, read as protobuf (kt_pb_next and the
 * partial_success walk) and as OTLP/JSON. Neither may crash or read past
 * the input, whatever the collector (or a proxy in front of it) sends. */
#include <stddef.h>
#include <stdint.h>

#include "core/kt_pb.h"
#include "store/kt_otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct kt_pb_reader r = {data, data + size};
  struct kt_pb_field f;
  while (kt_pb_next(&r, &f) > 0) {
    if (f.wire == KT_PB_LEN) { /* any field may be a nested message */
      struct kt_pb_reader in = {f.data, f.data + f.len};
      while (kt_pb_next(&in, &f) > 0)
        ;
    }
  }
  (void)kt_otlp_parse_response(KT_OTLP_PROTOBUF, data, size);
  (void)kt_otlp_parse_response(KT_OTLP_JSON, data, size);
  return 0;
}
