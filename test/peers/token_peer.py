"""A real rclpy node used by test_ros_foundation.py: echoes RLTokens and serves MarkEpisode.

It validates every RLToken with the same conversion the nodes use; a valid token is echoed on
/peer/echo, an invalid one is counted and its error published on /peer/rejected. MarkEpisode is
accepted once per episode that sent a token (a second mark is rejected).
"""

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String

from rlt_ros.msg import RLToken
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, token_from_msg, token_to_msg
from rlt_ros.srv import MarkEpisode


class TokenPeer(Node):
    def __init__(self):
        super().__init__("token_peer")
        self.episodes: dict[int, bool] = {}
        self.echo = self.create_publisher(RLToken, "/peer/echo", qos.STREAM)
        self.rejected = self.create_publisher(String, "/peer/rejected", qos.STREAM)
        self.create_subscription(RLToken, "/rlt/token", self.on_token, qos.STREAM)
        self.create_service(MarkEpisode, "/rlt/mark_episode", self.on_mark)

    def on_token(self, msg):
        try:
            packet = token_from_msg(msg)
        except MessageError as err:
            self.rejected.publish(String(data=str(err)))
            return
        self.episodes.setdefault(packet.episode_id, False)
        self.echo.publish(token_to_msg(packet))

    def on_mark(self, request, response):
        episode = max(self.episodes, default=0)
        if episode == 0:
            response.accepted, response.message = False, "no episode is running"
        elif self.episodes[episode]:
            response.accepted, response.message = False, f"episode {episode} was already marked"
        else:
            self.episodes[episode] = True
            response.accepted, response.episode_id = True, episode
            response.message = f"episode {episode}: {'success' if request.success else 'failure'} ({request.note})"
        return response


def main():
    rclpy.init()
    node = TokenPeer()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
