"""Runs Fireflies' documented queries and mutations against hark with the official gql client.

usage: fireflies_gql.py URL TOKEN STEPS_JSON
STEPS_JSON is a list of [operation, variables]; operation is one of OPERATIONS below,
written as Fireflies' docs and SDK write them (variables declared with Fireflies' types).
The client fetches the schema first and validates every document against it.
Prints one JSON list: per step {"data": …} or {"error": {"type", "errors", "data"}}.
"""
import json
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

OPERATIONS = {
    "user": """
        query User($userId: String!) {
          user(id: $userId) {
            user_id email name num_transcripts recent_transcript recent_meeting
            minutes_consumed is_admin integrations
          }
        }""",
    "me": "{ user { user_id name email integrations is_admin minutes_consumed num_transcripts } }",
    "users": "query Users { users { user_id email name is_admin num_transcripts } }",
    "transcripts": """
        query Transcripts($title: String, $keyword: String, $scope: TranscriptsQueryScope,
            $fromDate: DateTime, $toDate: DateTime, $limit: Int, $skip: Int, $hostEmail: String,
            $organizers: [String], $participants: [String], $userId: String, $mine: Boolean) {
          transcripts(title: $title, keyword: $keyword, scope: $scope, fromDate: $fromDate,
              toDate: $toDate, limit: $limit, skip: $skip, host_email: $hostEmail,
              organizers: $organizers, participants: $participants, user_id: $userId,
              mine: $mine) {
            id title date dateString duration host_email organizer_email participants
            transcript_url audio_url
            user { user_id name email }
          }
        }""",
    "transcript": """
        query Transcript($transcriptId: String!) {
          transcript(id: $transcriptId) {
            id title date dateString duration host_email organizer_email audio_url
            transcript_url video_url participants
            speakers { id name }
            meeting_attendees { displayName email phoneNumber name location }
            user { user_id email name }
            sentences { index speaker_name speaker_id text raw_text start_time end_time }
            summary {
              keywords action_items outline overview short_summary bullet_gist
              shorthand_bullet gist topics_discussed
            }
          }
        }""",
    "uploadAudio": """
        mutation($input: AudioUploadInput) {
          uploadAudio(input: $input) { success title message }
        }""",
    "updateMeetingTitle": """
        mutation($input: UpdateMeetingTitleInput!) {
          updateMeetingTitle(input: $input) { id title }
        }""",
    "deleteTranscript": """
        mutation($transcriptId: String!) {
          deleteTranscript(id: $transcriptId) { id title sentences { text } }
        }""",
    "setUserRole": """
        mutation($userId: String!, $role: Role!) {
          setUserRole(user_id: $userId, role: $role) { user_id name is_admin }
        }""",
}


def main():
    url, token, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    transport = RequestsHTTPTransport(
        url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    results = []
    client = Client(transport=transport, fetch_schema_from_transport=True)
    with client as session:
        for name, variables in steps:
            try:
                data = session.execute(gql(OPERATIONS[name]), variable_values=variables)
                results.append({"data": data})
            except TransportQueryError as e:
                results.append(
                    {"error": {"type": "TransportQueryError", "errors": e.errors, "data": e.data}}
                )
    print(json.dumps(results))


if __name__ == "__main__":
    try:
        main()
    except TransportQueryError as e:  # e.g. the schema fetch itself refused (bad token)
        print(json.dumps([{"error": {"type": "TransportQueryError", "errors": e.errors,
                                     "data": e.data}}]))
