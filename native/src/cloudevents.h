// SPDX-License-Identifier: Apache-2.0
// CloudEvents 1.0 headers (Kafka binary mode) of the records the native frame
// sink produces. The table of every topic's type and content type is
// src/common/cloudevents.ts; test/common/cloudevents.test.ts checks these
// literals against it.
#ifndef TRACEFEED_CLOUDEVENTS_H
#define TRACEFEED_CLOUDEVENTS_H

namespace tracefeed {
namespace ce {

constexpr const char kSpecVersion[] = "1.0";

// Header names.
constexpr const char kHeaderSpecVersion[] = "ce_specversion";
constexpr const char kHeaderId[] = "ce_id";
constexpr const char kHeaderSource[] = "ce_source";
constexpr const char kHeaderType[] = "ce_type";
constexpr const char kHeaderTime[] = "ce_time";
constexpr const char kHeaderContentType[] = "content-type";

// ce_source of a node's records: kNodeSourcePrefix + node name.
constexpr const char kNodeSourcePrefix[] = "/node/";

// tracefeed.events.v1
constexpr const char kEventsType[] = "io.tracefeed.events.v1";
constexpr const char kEventsContentType[] = "application/vnd.tracefeed.frame.v1";

}  // namespace ce
}  // namespace tracefeed

#endif
