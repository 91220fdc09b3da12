# Reads a bounce with Sisimai (Debian's libsisimai-perl) and prints what it finds, one
# object per recipient, as JSON. Usage: perl dsn-sisimai.pl REPORT.eml
use strict;
use warnings;
use JSON::PP;
use Sisimai;

my $path = shift or die "usage: $0 REPORT.eml\n";
open(my $fh, '<:raw', $path) or die "$path: $!\n";
my $mail = do { local $/; <$fh> };
close $fh;

# Sisimai 4 has make(); Sisimai 5 renamed it rise().
my $read = Sisimai->can('rise') || Sisimai->can('make');
my $list = $read->('Sisimai', \$mail, delivered => 1) || [];
my @found = map {
    {
        recipient      => $_->recipient->address,
        status         => $_->deliverystatus,
        reason         => $_->reason,
        replycode      => $_->replycode,
        action         => $_->action,
        diagnostictype => $_->diagnostictype,
        diagnosticcode => $_->diagnosticcode,
        rhost          => $_->rhost,
    }
} @$list;
print JSON::PP->new->canonical->utf8(0)->encode({ version => Sisimai->version, found => \@found }), "\n";
